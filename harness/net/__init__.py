"""The network a run lives in: a private namespace, iptables cuts between nodes, topologies."""
