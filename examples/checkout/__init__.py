"""The checkout saga: OrderPlaced -> ReserveInventory -> ProcessPayment -> ShipOrder,
compensated in reverse when a step fails (see :mod:`examples.checkout.saga`)."""
