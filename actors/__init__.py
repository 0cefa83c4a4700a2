"""Engines behind one contract (EngineOutput), a registry by name, and the routing policy."""
