"""import-svc's pure rules (no I/O): the import request, value conversion, HubSpot's import rules,
column suggestions and HubSpot's import error types."""
