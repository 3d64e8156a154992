# Local Kafka broker without Docker: `include kafka/kafka.mk` from the top Makefile.
#   make kafka-jars   resolve the Kafka 4.x broker jars from Maven Central (once per pom change)
#   make kafka        start a single-node KRaft broker on 127.0.0.1:9092 (data in var/kafka)
#   make kafka-stop   stop it (SIGTERM, then SIGKILL after 30 s)
#   make -s kafka-env export lines with the service and admin credentials (SASL/SCRAM), for
#                     eval "$(make -s kafka-env)"; passwords live in $(KAFKA_DIR)/credentials (0600)
#   make kafka NODES=3  a three-node KRaft cluster instead (data in var/kafka-cluster, ports
#                     19092/19094/19096, controllers 19093/19095/19097, so it can run beside the
#                     single node); the other targets take the same NODES=3 (or KAFKA_DIR=...)
# The launcher is the package dev/localkafka (`python -m dev.localkafka`), run with the venv's
# Python from the repository root; `make kafka` creates the venv first.

PY ?= .venv/bin/python
KAFKA_LIBS ?= .cache/kafka/libs
NODES ?= 1
ifeq ($(NODES),1)
KAFKA_DIR ?= var/kafka
KAFKA_START_ARGS =
else
KAFKA_DIR ?= var/kafka-cluster
KAFKA_CLUSTER_PORT ?= 19092
KAFKA_START_ARGS = --nodes $(NODES) --port $(KAFKA_CLUSTER_PORT) \
	--controller-port $(shell expr $(KAFKA_CLUSTER_PORT) + 1)
endif

# Prefix for commands of `make run`: the service principal's KOPPELPUNT_KAFKA_* settings.
KAFKA_ENV = kenv="$$($(PY) -m dev.localkafka env --dir $(KAFKA_DIR))" && eval "$$kenv" &&

.PHONY: kafka-jars kafka kafka-stop kafka-status kafka-env

kafka-jars: $(KAFKA_LIBS)/.complete

# The stamp is written only after a complete copy, and is older than the pom when the pom
# changes: then the jars are resolved again from scratch (no stale jars left behind).
$(KAFKA_LIBS)/.complete: kafka/pom.xml
	rm -rf $(KAFKA_LIBS)
	cd kafka && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory=$(abspath $(KAFKA_LIBS))
	touch $@

kafka: kafka-jars $(VENV)/.installed
	$(PY) -m dev.localkafka start --dir $(KAFKA_DIR) --libs $(KAFKA_LIBS)$(if $(KAFKA_START_ARGS), $(KAFKA_START_ARGS))

kafka-stop:
	$(PY) -m dev.localkafka stop --dir $(KAFKA_DIR)

kafka-status:
	$(PY) -m dev.localkafka status --dir $(KAFKA_DIR)

kafka-env:
	@$(PY) -m dev.localkafka env --admin --dir $(KAFKA_DIR)
