"""The websocket streams: the protocol, one stream on its link schedule, its frames and the JPEG race."""
