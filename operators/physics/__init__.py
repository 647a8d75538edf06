"""Physics-informed models: PDE specifications, PINN, causal PINN and LPINN."""
