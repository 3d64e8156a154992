"""`python -m dev.localkafka start|stop|status|env|watch` (see dev/localkafka/broker.py)."""

from dev.localkafka.broker import main

raise SystemExit(main())
