"""meterd: samples one house's power draw and publishes each reading to RabbitMQ."""
