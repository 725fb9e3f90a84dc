"""Notes appended to contacts and cases, and corrections of their sealed fields with the old value kept."""
