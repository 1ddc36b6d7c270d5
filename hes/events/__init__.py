"""Events, alarms and safe remote control: the event table, pushes, the MQTT outbox and publisher, users and roles."""
