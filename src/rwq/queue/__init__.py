"""The reliable Redis work queue: jobs, producers, workers, the reaper, admin and events."""
