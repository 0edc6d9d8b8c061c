"""What is special to a kind of device: the device list (PCI NICs and kernel interfaces), the
XDP verdict programs, and the 82599 model's test hooks."""
