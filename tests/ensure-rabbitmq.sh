#!/usr/bin/env bash
# Start the local RabbitMQ when it does not answer on 127.0.0.1:5672, and wait for it.
set -u
answers() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if answers; then exit 0; fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "RabbitMQ does not answer on 127.0.0.1:5672 and rabbitmq-server is not installed" >&2
  exit 1
fi
echo "Starting RabbitMQ (rabbitmq-server -detached)..."
rabbitmq-server -detached || true
for _ in $(seq 1 120); do
  if answers && rabbitmqctl -q status >/dev/null 2>&1; then
    echo "RabbitMQ is up."
    exit 0
  fi
  sleep 1
done
echo "RabbitMQ did not come up within 120 s" >&2
exit 1
