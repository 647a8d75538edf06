"""Neural-network layers: spectral convolutions, rational activations, channel MLPs."""
