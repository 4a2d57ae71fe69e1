#!/usr/bin/env bash
# Make sure the local RabbitMQ answers on 127.0.0.1:5672, with its management API on
# 15672 (the conformance tests create a vhost per scenario through it), starting the
# broker and enabling the plugin when needed, and wait until both answer.
set -u
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  for _ in $(seq 1 "$2"); do
    answers "$1" && return 0
    sleep 1
  done
  return 1
}
if ! answers 5672; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ does not answer on 127.0.0.1:5672 and rabbitmq-server is not installed" >&2
    exit 1
  fi
  echo "Starting RabbitMQ (rabbitmq-server -detached)..."
  rabbitmq-server -detached || true
  wait_for 5672 120 || { echo "RabbitMQ did not come up within 120 s" >&2; exit 1; }
  rabbitmqctl -q await_startup >/dev/null 2>&1 || true
fi
if ! answers 15672; then
  echo "Enabling the RabbitMQ management plugin..."
  rabbitmq-plugins -q enable rabbitmq_management >/dev/null || { echo "could not enable rabbitmq_management" >&2; exit 1; }
  wait_for 15672 60 || { echo "the management API did not come up on 15672" >&2; exit 1; }
fi
echo "RabbitMQ answers on 5672, its management API on 15672."
