"""What a plugin may do and who said so: grants and their file, the review of a request, policies,
queue scopes, the audit log."""
