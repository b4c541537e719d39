"""Error answers in the two shapes Mercado Pago uses.

Orders API:   {"errors": [{"code": "...", "message": "...", "details": ["..."]}]}
Payments API: {"message": "...", "error": "...", "status": 404, "cause": [{"code", "description", "data"}]}
"""


class ApiError(Exception):
    """An HTTP error answer from the simulated Mercado Pago: its status and its JSON body."""

    def __init__(self, status: int, body: dict):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        """The stable error code, whichever of the two shapes the body has."""
        if "errors" in self.body:
            return self.body["errors"][0]["code"]
        return self.body.get("error", "")


def orders_error(status: int, code: str, message: str, details: list[str] | None = None) -> ApiError:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return ApiError(status, {"errors": [error]})


def payments_error(status: int, error: str, message: str, cause: list[dict] | None = None) -> ApiError:
    return ApiError(status, {"message": message, "error": error, "status": status, "cause": cause or []})
