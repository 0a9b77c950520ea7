"""Village stations, the county side: accounts, manifests, as-run ingest, alerts and the broker."""
