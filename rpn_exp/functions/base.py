"""What every RPN component function shares."""


class Function:
    """Base of the expansion, reconciliation, interdependence and remainder functions.

    A function object holds hyper-parameters only; its ``repr`` lists them (those set to None left out).
    """

    name = "function"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"{type(self).__name__}({args})"
