"""reinit: reinitialize ECS disks safely from Function Compute."""
