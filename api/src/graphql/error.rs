//! Every error the API returns is a GraphQL error whose `extensions.code` says what kind it is
//! and whose message says what was wrong.

use kefu_desk::CommandError;
use kefu_domain::DomainError;
use kefu_eventlog::LogError;
use kefu_projections::ProjectionError;
use kefu_projections::search::SearchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Validation,
    RateLimited,
    Unavailable,
    Timeout,
    IdempotencyKeyReused,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::Conflict => "CONFLICT",
            Code::Validation => "VALIDATION",
            Code::RateLimited => "RATE_LIMITED",
            Code::Unavailable => "UNAVAILABLE",
            Code::Timeout => "TIMEOUT",
            Code::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
        }
    }
}

/// Deliberately not `Display`: async-graphql turns any `Display` error into a GraphQL error
/// without an extension code, and every error kefu returns must carry one.
#[derive(Debug, Clone)]
pub enum ApiError {
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    Validation(String),
    RateLimited(String),
    Unavailable(String),
    /// The request ran past `--request-timeout-secs`; a mutation's outcome is unknown.
    Timeout(String),
    /// An idempotency key sent again with another request.
    KeyReused(String),
}

impl ApiError {
    pub fn message(&self) -> &str {
        match self {
            ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::Validation(m)
            | ApiError::RateLimited(m)
            | ApiError::Unavailable(m)
            | ApiError::Timeout(m)
            | ApiError::KeyReused(m) => m,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::Forbidden(_) => Code::Forbidden,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::Conflict(_) => Code::Conflict,
            ApiError::Validation(_) => Code::Validation,
            ApiError::RateLimited(_) => Code::RateLimited,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Timeout(_) => Code::Timeout,
            ApiError::KeyReused(_) => Code::IdempotencyKeyReused,
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        let code = e.code();
        let mut error = async_graphql::Error::new(e.message());
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
        error
    }
}

/// Errors async-graphql raises itself (a query that does not parse, an unknown field, a
/// limit exceeded) are about the request: they get `VALIDATION`.
pub fn code_unmarked(errors: &mut [async_graphql::ServerError]) {
    for e in errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", Code::Validation.as_str());
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        use DomainError as D;
        let message = e.to_string();
        match e {
            D::NotCreated { .. }
            | D::UnknownCustomer { .. }
            | D::UnknownOrder { .. }
            | D::UnknownQueue { .. }
            | D::UnknownAgent { .. }
            | D::UnknownKnowledgeEntry { .. }
            | D::UnknownConversation { .. }
            | D::UnknownTicket { .. }
            | D::UnknownTurn { .. } => ApiError::NotFound(message),
            D::Validation { .. }
            | D::ScoreOutOfRange { .. }
            | D::CustomerMismatch { .. }
            | D::BusinessLineMismatch { .. }
            | D::AgentLacksSkills { .. }
            | D::InvalidMerge { .. } => ApiError::Validation(message),
            // Stored events this build cannot read: the server, not the request, is at fault.
            D::UnknownEventType { .. }
            | D::UnsupportedSchemaVersion { .. }
            | D::MalformedEvent { .. }
            | D::Encoding { .. } => ApiError::Unavailable(message),
            // Everything else is a rule refusing the command in the state the stream is in.
            _ => ApiError::Conflict(message),
        }
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        let message = e.to_string();
        if e.is_conflict() || matches!(e, LogError::DuplicateEventId { .. }) {
            ApiError::Conflict(message)
        } else if e.is_invalid_input() {
            ApiError::Validation(message)
        } else {
            ApiError::Unavailable(message)
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Rejected(d) => d.into(),
            CommandError::Contended { .. } => ApiError::Conflict(e.to_string()),
            CommandError::Load { .. } => ApiError::Unavailable(e.to_string()),
            CommandError::Log(l) => l.into(),
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::Invalid(m) => ApiError::Validation(m),
            ProjectionError::UnknownGeneration { .. }
            | ProjectionError::UnknownProjection { .. } => ApiError::NotFound(e.to_string()),
            e => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::EmptyQuery
            | SearchError::QueryTooLong { .. }
            | SearchError::BadLimit { .. }
            | SearchError::BadOffset { .. }
            | SearchError::BadDateRange { .. } => ApiError::Validation(e.to_string()),
            e => ApiError::Unavailable(e.to_string()),
        }
    }
}
