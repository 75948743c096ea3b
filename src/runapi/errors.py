"""One error tree for the whole gateway; each surface renders it in its own dialect.

    RunapiError
    ├── InvalidRequest                400  (param, code)
    │   ├── ContextLengthExceeded     400  context_length_exceeded
    │   └── ContentPolicyViolation    400  content_policy_violation
    ├── AuthenticationFailed          401  invalid_api_key
    ├── InsufficientCredits           402  insufficient_credits (metadata.reason)
    ├── PermissionDenied              403
    ├── NotFound                      404
    │   └── ModelNotFound             404  model_not_found
    ├── Conflict                      409  (idempotency_key_reused, ...)
    ├── Gone                          410
    ├── PayloadTooLarge               413
    ├── RateLimited                   429  rate_limit_exceeded (+ retry_after)
    ├── Overloaded                    503  server_is_overloaded (529 on the Anthropic surface)
    ├── UpstreamError                 502  a provider failed
    │   ├── UpstreamNotConfigured     503  no upstream for the model
    │   ├── UpstreamUnavailable       503  connection refused / down
    │   ├── UpstreamRateLimited       429  the operator's upstream account is throttled
    │   ├── UpstreamQuotaExhausted    503  the operator's upstream account is out of quota
    │   └── UpstreamTimeout           504
    └── InternalError                 500

Errors carry a `kind` that the dialect renderers map to their own type names, so no surface
classifies errors by message text.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    BILLING = "billing"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    GONE = "gone"
    TOO_LARGE = "too_large"
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    UPSTREAM = "upstream"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class RunapiError(Exception):
    status: int = 500
    kind: ErrorKind = ErrorKind.INTERNAL
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        metadata: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after
        self.metadata = metadata or {}
        if status is not None:
            self.status = status

    @property
    def retryable(self) -> bool:
        return self.status in (408, 409, 429) or self.status >= 500

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r}, code={self.code!r})"


class InvalidRequest(RunapiError):
    status = 400
    kind = ErrorKind.INVALID_REQUEST
    default_code = "invalid_value"


class ContextLengthExceeded(InvalidRequest):
    default_code = "context_length_exceeded"


class ContentPolicyViolation(InvalidRequest):
    default_code = "content_policy_violation"


class AuthenticationFailed(RunapiError):
    status = 401
    kind = ErrorKind.AUTHENTICATION
    default_code = "invalid_api_key"


class InsufficientCredits(RunapiError):
    status = 402
    kind = ErrorKind.BILLING
    default_code = "insufficient_credits"


class PermissionDenied(RunapiError):
    status = 403
    kind = ErrorKind.PERMISSION
    default_code = "permission_denied"


class NotFound(RunapiError):
    status = 404
    kind = ErrorKind.NOT_FOUND
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class Conflict(RunapiError):
    status = 409
    kind = ErrorKind.CONFLICT
    default_code = "conflict"


class Gone(RunapiError):
    status = 410
    kind = ErrorKind.GONE
    default_code = "gone"


class PayloadTooLarge(RunapiError):
    status = 413
    kind = ErrorKind.TOO_LARGE
    default_code = "request_too_large"


class RateLimited(RunapiError):
    """Our own limit. `limit_type` is `requests` or `tokens` (OpenAI's error `type`)."""

    status = 429
    kind = ErrorKind.RATE_LIMIT
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, limit_type: str = "requests", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.limit_type = limit_type


class Overloaded(RunapiError):
    status = 503
    kind = ErrorKind.OVERLOADED
    default_code = "server_is_overloaded"


class UpstreamError(RunapiError):
    status = 502
    kind = ErrorKind.UPSTREAM
    default_code = "upstream_error"


class UpstreamNotConfigured(UpstreamError):
    status = 503
    default_code = "upstream_not_configured"


class UpstreamUnavailable(UpstreamError):
    status = 503
    kind = ErrorKind.OVERLOADED
    default_code = "server_is_overloaded"


class UpstreamRateLimited(UpstreamError):
    status = 429
    kind = ErrorKind.RATE_LIMIT
    default_code = "rate_limit_exceeded"


class UpstreamQuotaExhausted(UpstreamError):
    status = 503
    default_code = "insufficient_quota"


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = ErrorKind.TIMEOUT
    default_code = "timeout"


class InternalError(RunapiError):
    status = 500
    kind = ErrorKind.INTERNAL
    default_code = None
