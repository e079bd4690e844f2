"""Operations on a running host: hot reload with probation and rollback, the control channel of
`rwq plugin reload`, seeding a check's jobs."""
