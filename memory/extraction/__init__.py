"""Background extraction: turns in a Redis stream → candidate memories → ADD/UPDATE/DELETE/NOOP."""
