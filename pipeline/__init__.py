"""unitok's pipeline, in layers that import only downward: core (data model, schemas, config) → formats
(detection, splitters) → stages (driver-free stage functions) → drivers (local, Ray Data, Serve) → job →
cli. Engines (unitok.actors) sit between formats and stages; stores and output (unitok.connectors) sit
just above core."""
