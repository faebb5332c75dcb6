"""The domain: commands, events, status rules and ontology validation — plain Python and pydantic."""
