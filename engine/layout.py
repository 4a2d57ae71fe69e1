"""Automatic layout: layered, left to right (producers, exchanges, queues, consumers)."""

from __future__ import annotations

import math

import networkx as nx

from .model import Topology, node_id, split_node_id

COLUMN_GAP = 360.0
ROW_GAP = 96.0


def topology_graph(topology: Topology) -> nx.DiGraph:
    """Nodes and the relations between them: publishes, bindings, consumes, dead-letters."""
    graph = nx.DiGraph()
    for nid in topology.node_ids():
        graph.add_node(nid, kind=split_node_id(nid)[0])
    for producer in topology.producers:
        if producer.exchange_id is not None:
            graph.add_edge(producer.id, producer.exchange_id, relation="publishes")
    for binding in topology.bindings:
        graph.add_edge(binding.source_id, binding.destination_id, relation="binding")
    for consumer in topology.consumers:
        if consumer.queue_id is not None:
            graph.add_edge(consumer.queue_id, consumer.id, relation="consumes")
    for queue in topology.queues:
        dlx = queue.arguments.get("x-dead-letter-exchange")
        if isinstance(dlx, str):
            target = node_id("exchange", queue.vhost, dlx)
            if target in graph:
                graph.add_edge(queue.id, target, relation="dead-letter")
    for exchange in topology.exchanges:
        alternate = exchange.arguments.get("alternate-exchange")
        if isinstance(alternate, str):
            target = node_id("exchange", exchange.vhost, alternate)
            if target in graph:
                graph.add_edge(exchange.id, target, relation="alternate")
    return graph


KIND_COLUMN = {"producer": 0, "exchange": 1, "queue": 2, "consumer": 3}


def _layers(topology: Topology, graph: nx.DiGraph) -> dict[str, int]:
    """Each node one column right of everything that sends it messages (publishes, bindings,
    consumes, dead-letters, alternates), and no further left than its kind's column.

    So a dead-letter exchange lands right of the queues that dead-letter into it, not
    behind them; nodes on a cycle share a column.
    """
    condensed = nx.condensation(graph)
    mapping = condensed.graph["mapping"]
    members = {c: condensed.nodes[c]["members"] for c in condensed.nodes}
    order = list(nx.topological_sort(condensed))
    floors = {nid: KIND_COLUMN.get(kind, 0) for nid, kind in graph.nodes(data="kind")}

    def place() -> dict[str, int]:
        depth: dict[int, int] = {}
        for component in order:
            floor = max(floors[n] for n in members[component])
            preds = list(condensed.predecessors(component))
            depth[component] = max(floor, 1 + max((depth[p] for p in preds), default=-1))
        return {nid: depth[mapping[nid]] for nid in graph.nodes}

    layers = place()
    # Queues fed straight from the first exchanges line up in one column (and their
    # consumers in the next); what dead letters feed comes after them.
    first_queues = [n for n, kind in graph.nodes(data="kind") if kind == "queue" and not _behind_dead_letters(graph, n)]
    if first_queues:
        column = max(layers[n] for n in first_queues)
        for nid in first_queues:
            floors[nid] = column
        layers = place()
    return layers


def _behind_dead_letters(graph: nx.DiGraph, nid: str) -> bool:
    """Whether messages reach ``nid`` only by dead-lettering (or not at all from a producer)."""
    return any(rel == "dead-letter" for _, _, rel in graph.in_edges(nid, data="relation")) or any(
        graph.nodes[a]["kind"] == "exchange" and _reached_by_dead_letter_only(graph, a) for a, _ in graph.in_edges(nid)
    )


def _reached_by_dead_letter_only(graph: nx.DiGraph, exchange: str) -> bool:
    incoming = list(graph.in_edges(exchange, data="relation"))
    return bool(incoming) and all(rel == "dead-letter" for _, _, rel in incoming)


def layered_positions(topology: Topology) -> dict[str, tuple[float, float]]:
    """Positions for every node, columns by kind, rows ordered to keep edges short."""
    graph = topology_graph(topology)
    if not graph:
        return {}
    layers = _layers(topology, graph)
    columns: dict[int, list[str]] = {}
    for nid in graph.nodes:
        columns.setdefault(layers[nid], []).append(nid)
    undirected = graph.to_undirected(as_view=True)
    order = {nid: float(i) for column in columns.values() for i, nid in enumerate(column)}
    # A few barycentre sweeps, left to right then back: each node moves towards the
    # mean row of its neighbours in the column beside it.
    for sweep in range(6):
        keys = sorted(columns) if sweep % 2 == 0 else sorted(columns, reverse=True)
        for layer in keys:
            column = columns[layer]
            direction = -1 if sweep % 2 == 0 else 1

            def barycentre(nid: str, layer: int = layer, direction: int = direction) -> float:
                near = [order[m] for m in undirected.neighbors(nid) if layers[m] == layer + direction]
                return sum(near) / len(near) if near else order[nid]

            column.sort(key=lambda nid: (barycentre(nid), order[nid]))
            for i, nid in enumerate(column):
                order[nid] = float(i)
    tallest = max(len(c) for c in columns.values())
    positions: dict[str, tuple[float, float]] = {}
    for layer, column in columns.items():
        offset = (tallest - len(column)) * ROW_GAP / 2
        for i, nid in enumerate(column):
            positions[nid] = (layer * COLUMN_GAP, offset + i * ROW_GAP)
    return positions


def complete_layout(topology: Topology) -> list[str]:
    """Give every node without a position one; returns the ids that were placed.

    With no positions at all the whole topology is laid out in layers. Nodes added
    to a laid-out topology go into their layer's column, beside the nodes they are
    connected to, in the first free row.
    """
    ids = topology.node_ids()
    missing = [nid for nid in ids if nid not in topology.layout]
    if not missing:
        return []
    if len(missing) == len(ids):
        topology.layout.update(layered_positions(topology))
        return missing
    graph = topology_graph(topology)
    layers = _layers(topology, graph)
    placed = {nid: pos for nid, pos in topology.layout.items() if nid in graph}
    column_x: dict[int, list[float]] = {}
    for nid, (x, _) in placed.items():
        column_x.setdefault(layers[nid], []).append(x)
    undirected = graph.to_undirected(as_view=True)
    # Nodes connected to nothing (queues a client declared and left alone, say) go in a block
    # under the drawing, row by row, instead of one column that grows off the screen.
    alone = [nid for nid in missing if not any(True for _ in undirected.neighbors(nid))]
    for nid in missing:
        if nid in alone:
            continue
        layer = layers[nid]
        if layer in column_x:
            x = sum(column_x[layer]) / len(column_x[layer])
        else:
            x = layer * COLUMN_GAP
        near = [placed[m][1] for m in undirected.neighbors(nid) if m in placed]
        y = sum(near) / len(near) if near else min((p[1] for p in placed.values()), default=0.0)
        y = _free_row(placed, x, y)
        placed[nid] = topology.layout[nid] = (x, y)
        column_x.setdefault(layer, []).append(x)
    if alone:
        xs = [p[0] for p in placed.values()] or [0.0]
        left, top = min(xs), max((p[1] for p in placed.values()), default=-ROW_GAP) + ROW_GAP * 1.5
        per_row = max(int((max(xs) - left) / COLUMN_GAP) + 1, math.ceil(math.sqrt(len(alone) * 2)))
        for index, nid in enumerate(alone):
            row, column = divmod(index, per_row)
            placed[nid] = topology.layout[nid] = (left + column * COLUMN_GAP, top + row * ROW_GAP)
    return missing


def _free_row(placed: dict[str, tuple[float, float]], x: float, y: float) -> float:
    """The nearest row to ``y`` (below first, then above) with no node around ``x``."""

    def taken(row: float) -> bool:
        return any(abs(px - x) < COLUMN_GAP * 0.6 and abs(py - row) < ROW_GAP * 0.8 for px, py in placed.values())

    for step in range(200):
        for row in (y + step * ROW_GAP, y - step * ROW_GAP):
            if not taken(row):
                return row
    return y
