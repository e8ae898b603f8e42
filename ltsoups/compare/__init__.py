"""`ltsoups compare`: a suite of methods on the same data, backbone, head, schedule and evaluation, over seeds."""
