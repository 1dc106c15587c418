"""The model: building and training the demo one, loading and saving artifacts with stable bytes."""
