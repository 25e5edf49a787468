"""HTTP: thin routes over the services (health, CA certificates, CRLs for now)."""
