"""``rwq demo``: a synthetic workload of tenants (:mod:`rwq.demo.workload`) run by real workers
beside the dashboard (:mod:`rwq.demo.run`)."""
