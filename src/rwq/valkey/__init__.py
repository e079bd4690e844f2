"""Valkey server processes: the user's embedded server and the throwaway standalone and
cluster servers of tests, chaos runs and benchmarks."""
