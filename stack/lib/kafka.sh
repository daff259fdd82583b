# shellcheck shell=bash
# Apache Kafka for stack mode and the tests: one KRaft broker+controller on loopback.
#
# Source this file, then call:
#   kafka_install  copy the broker jars (org.apache.kafka:kafka_2.13, see stack/kafka/pom.xml)
#                  from Maven Central into <repo>/.cache/kafka/libs (idempotent; needs
#                  Java 17 and Maven: apt packages openjdk-17-jre-headless and maven)
#   kafka_up       format the KRaft storage (first time) and start the broker
#   kafka_down     stop the broker started by kafka_up (by its PID)
#   kafka_env      print the RCA_BUS__* settings that point the processes at it
#
# Settings (environment): RCA_KAFKA_PORT (19092; the controller uses the next port),
# RCA_KAFKA_DATA (<repo>/.cache/stack/kafka), RCA_KAFKA_HEAP (512m),
# RCA_KAFKA_PARTITIONS (partitions of the metrics topic, 8).

_KAFKA_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_KAFKA_ROOT="$(cd "$_KAFKA_LIB_DIR/../.." && pwd)"

_kafka_port() { echo "${RCA_KAFKA_PORT:-19092}"; }
_kafka_cport() { echo "$(( $(_kafka_port) + 1 ))"; }
_kafka_data() { echo "${RCA_KAFKA_DATA:-$_KAFKA_ROOT/.cache/stack/kafka}"; }
_kafka_libs() { echo "$_KAFKA_ROOT/.cache/kafka/libs"; }

kafka_install() {
  if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" = "0" ] || sudo="sudo"
    echo "kafka_install: installing Java 17 and Maven (Debian)" >&2
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless maven >/dev/null 2>&1; then
      $sudo apt-get update -q >/dev/null
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless maven >/dev/null
    fi
  fi
  local libs stamp
  libs="$(_kafka_libs)"; stamp="$libs/.pom.sha"
  local want
  want="$(sha256sum "$_KAFKA_ROOT/stack/kafka/pom.xml" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1; then
    return 0
  fi
  echo "kafka_install: fetching the broker jars from Maven Central" >&2
  rm -rf "$libs"
  mvn -q -B -f "$_KAFKA_ROOT/stack/kafka/pom.xml" -Dmaven.repo.local="$_KAFKA_ROOT/.cache/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" >&2 || return 1
  echo "$want" > "$stamp"
}

_kafka_pid() {
  local f
  f="$(_kafka_data)/broker.pid"
  [ -f "$f" ] || return 1
  local pid
  pid="$(cat "$f")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

_kafka_ready() {  # the broker answers on its port
  (exec 3<>"/dev/tcp/127.0.0.1/$(_kafka_port)") 2>/dev/null
}

kafka_up() {
  local data port cport libs
  data="$(_kafka_data)"; port="$(_kafka_port)"; cport="$(_kafka_cport)"; libs="$(_kafka_libs)"
  ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1 || { echo "kafka_up: run kafka_install first" >&2; return 1; }
  if _kafka_pid >/dev/null; then
    return 0
  fi
  mkdir -p "$data/logs"
  cat > "$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
log.retention.hours=168
PROPS
  if [ ! -f "$data/logs/meta.properties" ]; then
    local id
    id="$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    java -cp "$libs/*" kafka.tools.StorageTool format -t "$id" -c "$data/server.properties" >"$data/format.log" 2>&1 \
      || { cat "$data/format.log" >&2; return 1; }
  fi
  nohup java -Xms128m -Xmx"${RCA_KAFKA_HEAP:-512m}" -XX:+UseSerialGC -Djava.awt.headless=true \
    -cp "$libs/*" kafka.Kafka "$data/server.properties" >"$data/broker.log" 2>&1 &
  echo $! > "$data/broker.pid"
  local i
  for i in $(seq 1 120); do
    if _kafka_ready; then
      return 0
    fi
    _kafka_pid >/dev/null || { tail -n 30 "$data/broker.log" >&2; return 1; }
    sleep 0.5
  done
  echo "kafka_up: broker did not open port $port in 60 s (see $data/broker.log)" >&2
  return 1
}

kafka_down() {
  local pid data
  data="$(_kafka_data)"
  pid="$(_kafka_pid)" || return 0
  kill "$pid"
  local i
  for i in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$data/broker.pid"; return 0; }
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$data/broker.pid"
}

kafka_env() {
  echo "RCA_BUS__BACKEND=kafka"
  echo "RCA_BUS__BOOTSTRAP_SERVERS=127.0.0.1:$(_kafka_port)"
  echo "RCA_BUS__PARTITIONS=${RCA_KAFKA_PARTITIONS:-8}"
}
