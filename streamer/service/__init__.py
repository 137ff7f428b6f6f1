"""The long-lived processes: the worker loop that renders frames, the job runner that decodes and muxes
submitted jobs, the pool that starts runners, and the supervisor that keeps their threads alive."""
