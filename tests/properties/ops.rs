//! The operations a sequence is made of, and how they are drawn.

use proptest::prelude::*;

use super::{NAMES, TYPES, USERS};

/// A reference to a file in a request: one some user reserved (possibly someone else's), a
/// well-formed id nobody reserved, or something that is not an id at all.
#[derive(Clone, Debug)]
pub enum FileRef {
    Reserved(prop::sample::Index),
    /// One of the files that are available (and not deleted) at that step, if any: what
    /// downloads and sharing act on, reached far more often than by chance.
    Available(prop::sample::Index),
    Random(u128),
    Garbage(String),
}

#[derive(Clone, Debug)]
pub enum Op {
    Reserve {
        user: usize,
        size: usize,
        content_type: usize,
        name: usize,
    },
    Upload(prop::sample::Index),
    /// An upload and its owner's `complete` at once: most sequences then reach available files,
    /// which sharing needs.
    Finish(prop::sample::Index),
    Complete(Who, FileRef),
    Get(usize, FileRef),
    DownloadUrl(usize, FileRef, bool),
    Batch(usize, Vec<FileRef>),
    List(usize, u32),
    Delete(usize, FileRef),
    /// Caller, file, grantee.
    Grant(Who, FileRef, usize),
    Revoke(Who, FileRef, usize),
    /// Caller, file, the owner named in the path.
    SharedDownload(Who, FileRef, Who),
    ListShared(usize),
    /// Caller, file, `maxDownloads`.
    CreateLink(Who, FileRef, Option<u32>),
    /// A link the model made; with another secret when `true`.
    Redeem(prop::sample::Index, bool),
    /// Caller, link.
    RevokeLink(Who, prop::sample::Index),
}

/// Who acts on a file: mostly its owner, so that sequences get as far as available, shared and
/// linked files; sometimes any user, who must then be refused unless it is the owner.
#[derive(Clone, Debug)]
pub enum Who {
    Owner,
    /// A user holding a grant to the file, if any (else its owner).
    Grantee,
    User(usize),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => Just(Who::Owner),
        1 => (0..USERS.len()).prop_map(Who::User),
    ]
}

/// Who asks for a shared file: mostly one holding a grant to it.
fn grantee() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => Just(Who::Grantee),
        1 => (0..USERS.len()).prop_map(Who::User),
    ]
}

fn file_ref() -> impl Strategy<Value = FileRef> {
    file_ref_weighted(6, 4)
}

/// A file to share: mostly an available one, as only those can be.
fn shared_ref() -> impl Strategy<Value = FileRef> {
    file_ref_weighted(2, 8)
}

fn file_ref_weighted(reserved: u32, available: u32) -> impl Strategy<Value = FileRef> {
    prop_oneof![
        reserved => any::<prop::sample::Index>().prop_map(FileRef::Reserved),
        available => any::<prop::sample::Index>().prop_map(FileRef::Available),
        1 => any::<u128>().prop_map(FileRef::Random),
        1 => prop_oneof![
            Just("..".to_owned()),
            Just("%2e%2e".to_owned()),
            "[0-9a-f%-]{1,40}",
        ]
        .prop_map(FileRef::Garbage),
    ]
}

pub fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    prop_oneof![
        4 => (user.clone(), 1usize..48, 0..TYPES.len(), 0..NAMES.len()).prop_map(
            |(user, size, content_type, name)| Op::Reserve { user, size, content_type, name }
        ),
        3 => any::<prop::sample::Index>().prop_map(Op::Upload),
        5 => any::<prop::sample::Index>().prop_map(Op::Finish),
        3 => (who(), file_ref()).prop_map(|(w, f)| Op::Complete(w, f)),
        1 => (user.clone(), file_ref()).prop_map(|(u, f)| Op::Get(u, f)),
        3 => (user.clone(), file_ref(), any::<bool>()).prop_map(|(u, f, i)| Op::DownloadUrl(u, f, i)),
        2 => (user.clone(), prop::collection::vec(file_ref(), 1..6)).prop_map(|(u, f)| Op::Batch(u, f)),
        1 => (user.clone(), 1u32..4).prop_map(|(u, l)| Op::List(u, l)),
        2 => (user.clone(), file_ref()).prop_map(|(u, f)| Op::Delete(u, f)),
        3 => (who(), shared_ref(), user.clone()).prop_map(|(w, f, g)| Op::Grant(w, f, g)),
        1 => (who(), shared_ref(), user.clone()).prop_map(|(w, f, g)| Op::Revoke(w, f, g)),
        4 => (grantee(), shared_ref(), who()).prop_map(|(c, f, o)| Op::SharedDownload(c, f, o)),
        1 => user.prop_map(Op::ListShared),
        3 => (who(), shared_ref(), prop::option::of(1u32..3))
            .prop_map(|(w, f, m)| Op::CreateLink(w, f, m)),
        4 => (any::<prop::sample::Index>(), prop::bool::weighted(0.3))
            .prop_map(|(l, t)| Op::Redeem(l, t)),
        1 => (who(), any::<prop::sample::Index>()).prop_map(|(w, l)| Op::RevokeLink(w, l)),
    ]
}
