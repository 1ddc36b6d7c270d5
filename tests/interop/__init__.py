"""Cross-checks of our DLMS/COSEM stack against the test-only peers gurux-dlms and dlms-cosem."""
