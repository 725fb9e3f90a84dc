"""A caseworker's search of their own contacts and cases."""
