"""The `certdesk` command for officers and holders."""
