//! The route table: the single list of what the API serves. The deployment template's routes are
//! checked against it by a test, so the two cannot drift apart.

use crate::error::AppError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    CreateUpload,
    ListFiles,
    GetFile,
    DeleteFile,
    CompleteUpload,
    PresignDownload,
    PresignDownloads,
    GetUsage,
    PresignParts,
    ListParts,
    PresignUpload,
}

impl Action {
    /// The name used in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateUpload => "create_upload",
            Self::ListFiles => "list_files",
            Self::GetFile => "get_file",
            Self::DeleteFile => "delete_file",
            Self::CompleteUpload => "complete_upload",
            Self::PresignDownload => "presign_download",
            Self::PresignDownloads => "presign_downloads",
            Self::GetUsage => "get_usage",
            Self::PresignParts => "presign_parts",
            Self::ListParts => "list_parts",
            Self::PresignUpload => "presign_upload",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    /// API Gateway route syntax; `{id}` is the only parameter.
    pub path: &'static str,
    pub action: Action,
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/uploads",
        action: Action::CreateUpload,
    },
    Route {
        method: "GET",
        path: "/files",
        action: Action::ListFiles,
    },
    Route {
        method: "GET",
        path: "/files/{id}",
        action: Action::GetFile,
    },
    Route {
        method: "DELETE",
        path: "/files/{id}",
        action: Action::DeleteFile,
    },
    Route {
        method: "POST",
        path: "/files/{id}/complete",
        action: Action::CompleteUpload,
    },
    Route {
        method: "GET",
        path: "/files/{id}/download-url",
        action: Action::PresignDownload,
    },
    Route {
        method: "POST",
        path: "/files/download-urls",
        action: Action::PresignDownloads,
    },
    Route {
        method: "GET",
        path: "/usage",
        action: Action::GetUsage,
    },
    Route {
        method: "POST",
        path: "/files/{id}/parts",
        action: Action::PresignParts,
    },
    Route {
        method: "GET",
        path: "/files/{id}/parts",
        action: Action::ListParts,
    },
    Route {
        method: "POST",
        path: "/files/{id}/upload-url",
        action: Action::PresignUpload,
    },
];

/// The action for `method` on `path`, with the raw `{id}` segment when the route has one.
/// A path no route has is `RouteNotFound`; a known path with another method, `MethodNotAllowed`.
pub fn resolve<'p>(method: &str, path: &'p str) -> Result<(Action, Option<&'p str>), AppError> {
    let mut allowed = Vec::new();
    for route in ROUTES {
        let Some(id) = match_path(route.path, path) else {
            continue;
        };
        if route.method == method {
            return Ok((route.action, id));
        }
        allowed.push(route.method);
    }
    if allowed.is_empty() {
        Err(AppError::RouteNotFound)
    } else {
        Err(AppError::MethodNotAllowed(allowed.join(", ")))
    }
}

/// `Some(id segment)` when `path` fits `template`.
fn match_path<'p>(template: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut template_segments = template.split('/');
    let mut path_segments = path.split('/');
    let mut id = None;
    loop {
        match (template_segments.next(), path_segments.next()) {
            (None, None) => return Some(id),
            (Some("{id}"), Some(segment)) if !segment.is_empty() => id = Some(segment),
            (Some(expected), Some(segment)) if expected == segment => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit log names each route's action (README, "Logs"): one name per action, none empty.
    #[test]
    fn every_action_has_its_own_audit_name() {
        let names: std::collections::BTreeSet<&str> =
            ROUTES.iter().map(|route| route.action.name()).collect();
        assert_eq!(names.len(), ROUTES.len(), "{names:?}");
        assert!(names.contains("create_upload") && names.contains("presign_parts"));
        assert!(
            names
                .iter()
                .all(|name| !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')),
            "{names:?}"
        );
    }

    #[test]
    fn routes_resolve_with_their_id() {
        assert_eq!(
            resolve("POST", "/uploads").unwrap(),
            (Action::CreateUpload, None)
        );
        assert_eq!(
            resolve("GET", "/files/abc").unwrap(),
            (Action::GetFile, Some("abc"))
        );
        assert_eq!(
            resolve("GET", "/files/abc/download-url").unwrap(),
            (Action::PresignDownload, Some("abc"))
        );
        assert_eq!(
            resolve("POST", "/files/abc/complete").unwrap(),
            (Action::CompleteUpload, Some("abc"))
        );
        assert_eq!(
            resolve("POST", "/files/download-urls").unwrap(),
            (Action::PresignDownloads, None)
        );
        assert_eq!(resolve("GET", "/usage").unwrap(), (Action::GetUsage, None));
        assert_eq!(
            resolve("POST", "/files/abc/parts").unwrap(),
            (Action::PresignParts, Some("abc"))
        );
        assert_eq!(
            resolve("GET", "/files/abc/parts").unwrap(),
            (Action::ListParts, Some("abc"))
        );
        assert_eq!(
            resolve("POST", "/files/abc/upload-url").unwrap(),
            (Action::PresignUpload, Some("abc"))
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        for path in [
            "/",
            "",
            "/uploads/",
            "/files/",
            "/files/a/b",
            "/files/a/download-url/x",
            "/UPLOADS",
        ] {
            assert!(
                matches!(resolve("GET", path), Err(AppError::RouteNotFound)),
                "{path}"
            );
        }
        match resolve("DELETE", "/uploads") {
            Err(AppError::MethodNotAllowed(allow)) => assert_eq!(allow, "POST"),
            other => panic!("{other:?}"),
        }
        match resolve("PUT", "/files/abc") {
            Err(AppError::MethodNotAllowed(allow)) => assert_eq!(allow, "GET, DELETE"),
            other => panic!("{other:?}"),
        }
    }
}
