"""Keys and records over their whole life: rotation, shredding, retention, backups."""
