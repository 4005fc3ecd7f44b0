"""Ray Serve application: ingress, routing policies and vLLM engine pools."""
