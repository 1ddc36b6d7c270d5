"""CIM integration: IEC 61968-9 messages (lxml), the outbox, delivery into the legacy integration database."""
