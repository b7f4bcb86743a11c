"""The one error the dev stack raises, carrying what an operator needs to see to fix it."""


class StackError(RuntimeError):
    """A component failed to start, died, or a run did not finish; the message has the log tails."""
