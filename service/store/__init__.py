"""Persistence: the statements the domain runs against the database, and nothing else.

Every module here reads or writes rows (`sessions`: the per-user auth row with
compare-and-set; `sync`: cursors, jobs and upserts; `leases`: per-user mutual exclusion;
`vault`: the sealed session and the writes every session user makes); `sql` renders the
hand-written statements. The domain packages (`service.sessions`, `service.sync`) build on
these and never on each other.
"""
