"""The seam to NATS: nkeys (:mod:`.nkey`), JWTs (:mod:`.jwt`), auth-callout claims
(:mod:`.callout`), ``.creds`` files (:mod:`.creds`), curve xkeys (:mod:`.xkey`) and a local
nats-server process manager (:mod:`.server`)."""
