"""HTTP: routes translate requests to service calls and back; no rules live here."""
