"""The emulated ECS RPC API, version 2014-05-26."""
