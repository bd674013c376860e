"""NATS identity layer: nkeys and NATS JWTs (:mod:`.jwt`), curve xkeys (:mod:`.xkey`) and a
local nats-server process manager (:mod:`.server`)."""
