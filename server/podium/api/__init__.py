"""The API: JSON-RPC over WebSocket at ``/api/`` (Xen Orchestra's protocol), its methods and errors."""
