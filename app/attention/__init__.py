"""The coordinators' "needs attention" queue."""
