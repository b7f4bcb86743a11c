"""Job status: the poller, the event receiver, the reducer that orders events, the tracker of jobs."""
