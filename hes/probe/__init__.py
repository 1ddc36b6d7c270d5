"""The field tool: optical-probe reads (IEC 62056-21 mode E, then HDLC and DLMS), key files, bundles, import."""
