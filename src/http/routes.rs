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
    GrantFile,
    ListGrants,
    RevokeGrant,
    ListShared,
    PresignSharedDownload,
    CreateLink,
    ListLinks,
    RevokeLink,
    RedeemLink,
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
            Self::GrantFile => "grant_file",
            Self::ListGrants => "list_grants",
            Self::RevokeGrant => "revoke_grant",
            Self::ListShared => "list_shared",
            Self::PresignSharedDownload => "presign_shared_download",
            Self::CreateLink => "create_link",
            Self::ListLinks => "list_links",
            Self::RevokeLink => "revoke_link",
            Self::RedeemLink => "redeem_link",
        }
    }

    /// Whether the route is open to callers without an identity: only a share link's
    /// redemption, which its secret authorizes. The template deploys it without the JWT
    /// authorizer, and with throttling of its own; a test checks both against this.
    pub fn is_public(self) -> bool {
        self == Self::RedeemLink
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    /// API Gateway route syntax. Parameters: `{id}` (a file id), `{grantee}` (a grantee's sub,
    /// percent-encoded), `{owner}` (an owner's sub, percent-encoded) and `{linkId}` (a share
    /// link's id).
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
    Route {
        method: "POST",
        path: "/files/{id}/grants",
        action: Action::GrantFile,
    },
    Route {
        method: "GET",
        path: "/files/{id}/grants",
        action: Action::ListGrants,
    },
    Route {
        method: "DELETE",
        path: "/files/{id}/grants/{grantee}",
        action: Action::RevokeGrant,
    },
    Route {
        method: "GET",
        path: "/shared",
        action: Action::ListShared,
    },
    Route {
        method: "GET",
        path: "/shared/{owner}/{id}/download-url",
        action: Action::PresignSharedDownload,
    },
    Route {
        method: "POST",
        path: "/files/{id}/links",
        action: Action::CreateLink,
    },
    Route {
        method: "GET",
        path: "/files/{id}/links",
        action: Action::ListLinks,
    },
    Route {
        method: "DELETE",
        path: "/files/{id}/links/{linkId}",
        action: Action::RevokeLink,
    },
    Route {
        method: "GET",
        path: "/links/{linkId}",
        action: Action::RedeemLink,
    },
];

/// The raw segments of a request path that a route's parameters matched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathParams<'p> {
    pub id: Option<&'p str>,
    pub grantee: Option<&'p str>,
    pub owner: Option<&'p str>,
    pub link: Option<&'p str>,
}

/// The action for `method` on `path`, with the raw segments its parameters matched.
/// A path no route has is `RouteNotFound`; a known path with another method, `MethodNotAllowed`.
pub fn resolve<'p>(method: &str, path: &'p str) -> Result<(Action, PathParams<'p>), AppError> {
    let mut allowed = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.path, path) else {
            continue;
        };
        if route.method == method {
            return Ok((route.action, params));
        }
        allowed.push(route.method);
    }
    if allowed.is_empty() {
        Err(AppError::RouteNotFound)
    } else {
        Err(AppError::MethodNotAllowed(allowed.join(", ")))
    }
}

/// `Some(parameters)` when `path` fits `template`; a parameter matches one non-empty segment.
fn match_path<'p>(template: &str, path: &'p str) -> Option<PathParams<'p>> {
    let mut template_segments = template.split('/');
    let mut path_segments = path.split('/');
    let mut params = PathParams::default();
    loop {
        let (expected, segment) = match (template_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(expected), Some(segment)) => (expected, segment),
            _ => return None,
        };
        let slot = match expected {
            "{id}" => &mut params.id,
            "{grantee}" => &mut params.grantee,
            "{owner}" => &mut params.owner,
            "{linkId}" => &mut params.link,
            _ if expected == segment => continue,
            _ => return None,
        };
        if segment.is_empty() {
            return None;
        }
        *slot = Some(segment);
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

    fn id(id: &str) -> PathParams<'_> {
        PathParams {
            id: Some(id),
            ..PathParams::default()
        }
    }

    #[test]
    fn sharing_routes_resolve_with_their_parameters() {
        assert_eq!(
            resolve("DELETE", "/files/abc/grants/b%40b").unwrap(),
            (
                Action::RevokeGrant,
                PathParams {
                    id: Some("abc"),
                    grantee: Some("b%40b"),
                    owner: None,
                    link: None,
                }
            )
        );
        assert_eq!(
            resolve("GET", "/shared/alice/abc/download-url").unwrap(),
            (
                Action::PresignSharedDownload,
                PathParams {
                    id: Some("abc"),
                    grantee: None,
                    owner: Some("alice"),
                    link: None,
                }
            )
        );
        assert_eq!(
            resolve("DELETE", "/files/abc/links/l1").unwrap(),
            (
                Action::RevokeLink,
                PathParams {
                    link: Some("l1"),
                    ..id("abc")
                }
            )
        );
        assert_eq!(
            resolve("GET", "/links/l1").unwrap(),
            (
                Action::RedeemLink,
                PathParams {
                    link: Some("l1"),
                    ..PathParams::default()
                }
            )
        );
        assert!(
            ROUTES
                .iter()
                .filter(|route| route.action.is_public())
                .map(|route| route.path)
                .eq(["/links/{linkId}"])
        );
        assert_eq!(
            resolve("GET", "/shared").unwrap(),
            (Action::ListShared, PathParams::default())
        );
        assert!(matches!(
            resolve("GET", "/shared//abc/download-url"),
            Err(AppError::RouteNotFound)
        ));
        match resolve("PUT", "/files/abc/grants") {
            Err(AppError::MethodNotAllowed(allow)) => assert_eq!(allow, "POST, GET"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn routes_resolve_with_their_id() {
        assert_eq!(
            resolve("POST", "/uploads").unwrap(),
            (Action::CreateUpload, PathParams::default())
        );
        assert_eq!(
            resolve("GET", "/files/abc").unwrap(),
            (Action::GetFile, id("abc"))
        );
        assert_eq!(
            resolve("GET", "/files/abc/download-url").unwrap(),
            (Action::PresignDownload, id("abc"))
        );
        assert_eq!(
            resolve("POST", "/files/abc/complete").unwrap(),
            (Action::CompleteUpload, id("abc"))
        );
        assert_eq!(
            resolve("POST", "/files/download-urls").unwrap(),
            (Action::PresignDownloads, PathParams::default())
        );
        assert_eq!(
            resolve("GET", "/usage").unwrap(),
            (Action::GetUsage, PathParams::default())
        );
        assert_eq!(
            resolve("POST", "/files/abc/parts").unwrap(),
            (Action::PresignParts, id("abc"))
        );
        assert_eq!(
            resolve("GET", "/files/abc/parts").unwrap(),
            (Action::ListParts, id("abc"))
        );
        assert_eq!(
            resolve("POST", "/files/abc/upload-url").unwrap(),
            (Action::PresignUpload, id("abc"))
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
