"""Drivers: the same stage functions on a local process pool, Ray Data and Ray Serve."""
