"""The Elasticsearch search read model: indices per database behind aliases, projector, search, rebuild."""
