//! Read grants (README, "Sharing") in the service over the in-memory fakes: who gets a URL and
//! who does not, the limits of a grant, and that a grant never outlives its file or its revocation.

use presign_gate::domain::{
    Disposition, FileId, FileRecord, FileSharing, FileStatus, Grant, MAX_GRANTS_PER_FILE, OwnerId,
};
use presign_gate::error::AppError;
use presign_gate::service::FileService;
use presign_gate::store::{GrantStore, Transition};
use presign_gate_test_support::fakes::{FakeBucket, FakeStore, seed, service_over_pair};
use time::OffsetDateTime;

struct Harness {
    files: FileService<FakeStore, FakeBucket>,
    store: FakeStore,
    bucket: FakeBucket,
}

fn harness() -> Harness {
    let (files, store, bucket) = service_over_pair();
    Harness {
        files,
        store,
        bucket,
    }
}

fn who(name: &str) -> OwnerId {
    OwnerId::parse(name).unwrap()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

/// An available file of `owner`'s, with its object.
fn available(h: &Harness, owner: &str) -> FileRecord {
    seed(
        &h.store,
        &h.bucket,
        owner,
        FileId::new_random(),
        "text/plain",
        FileStatus::Available,
    )
}

async fn shared_download(
    h: &Harness,
    caller: &str,
    record: &FileRecord,
) -> Result<presign_gate::bucket::PresignedRequest, AppError> {
    h.files
        .presign_shared_download(
            &who(caller),
            &record.owner,
            record.id,
            None,
            Disposition::Attachment,
        )
        .await
}

/// Whether `grantee`'s `GET /shared` is empty.
async fn shares_nothing(h: &Harness, grantee: &str) -> bool {
    let (shared, _) = h.files.shared_with(&who(grantee), 10, None).await.unwrap();
    shared.is_empty()
}

#[tokio::test]
async fn a_grantee_gets_urls_for_the_shared_file_and_nothing_else() {
    let h = harness();
    let file = available(&h, "alice");
    let other = available(&h, "alice");
    let grant = h
        .files
        .grant(&file.owner, file.id, who("bob"), None)
        .await
        .unwrap();
    assert_eq!((grant.grantee.as_str(), grant.expires_at), ("bob", None));

    let url = shared_download(&h, "bob", &file).await.unwrap();
    assert!(url.url.contains(file.key.as_str()), "the owner's object");
    // No one else: not a third caller, not the owner through the grantee's route, not bob for
    // the owner's other file.
    for (caller, record) in [("carol", &file), ("alice", &file), ("bob", &other)] {
        assert!(
            matches!(
                shared_download(&h, caller, record).await,
                Err(AppError::NotFound)
            ),
            "{caller}"
        );
    }
    // The grant opens none of the owner's routes to bob: they read bob's own partition.
    let bob = who("bob");
    assert!(matches!(
        h.files.file(&bob, file.id).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        h.files.delete_file(&bob, file.id).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        h.files.grant(&bob, file.id, who("carol"), None).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        h.files.grants(&bob, file.id).await,
        Err(AppError::NotFound)
    ));
    assert!(
        h.files
            .list_files(&bob, 10, None)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert!(h.store.record(&file.owner, file.id).is_some());
    // bob sees the file in his shared listing, with its name and size.
    let (shared, _) = h.files.shared_with(&bob, 10, None).await.unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(
        (shared[0].owner.as_str(), shared[0].id, shared[0].size),
        ("alice", file.id, 3)
    );
}

#[tokio::test]
async fn grants_are_refused_as_the_api_answers() {
    let h = harness();
    let alice = who("alice");
    let file = available(&h, "alice");
    let pending = seed(
        &h.store,
        &h.bucket,
        "alice",
        FileId::new_random(),
        "text/plain",
        FileStatus::Pending,
    );
    let grant = |id, grantee: &str, expires_at| h.files.grant(&alice, id, who(grantee), expires_at);
    assert!(matches!(
        grant(pending.id, "bob", None).await,
        Err(AppError::NotReady(_))
    ));
    assert!(matches!(
        grant(FileId::new_random(), "bob", None).await,
        Err(AppError::NotFound)
    ));
    let bobs = available(&h, "bob");
    assert!(matches!(
        grant(bobs.id, "carol", None).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        grant(file.id, "alice", None).await,
        Err(AppError::Conflict(_))
    ));
    assert!(matches!(
        grant(file.id, "bob", Some(now())).await,
        Err(AppError::InvalidRequest(_))
    ));
    for n in 0..MAX_GRANTS_PER_FILE {
        grant(file.id, &format!("g{n:02}"), None).await.unwrap();
    }
    assert!(matches!(
        grant(file.id, "one-too-many", None).await,
        Err(AppError::Conflict(_))
    ));
    // A renewal is no new grant.
    let renewed = grant(file.id, "g07", Some(now() + time::Duration::hours(1)))
        .await
        .unwrap();
    assert!(renewed.expires_at.is_some());
    assert_eq!(
        h.files.grants(&alice, file.id).await.unwrap().len(),
        MAX_GRANTS_PER_FILE
    );
}

#[tokio::test]
async fn a_revoked_grant_stops_urls_at_once() {
    let h = harness();
    let file = available(&h, "alice");
    h.files
        .grant(&file.owner, file.id, who("bob"), None)
        .await
        .unwrap();
    shared_download(&h, "bob", &file).await.unwrap();
    h.files
        .revoke(&file.owner, file.id, &who("bob"))
        .await
        .unwrap();
    assert!(matches!(
        shared_download(&h, "bob", &file).await,
        Err(AppError::NotFound)
    ));
    assert!(shares_nothing(&h, "bob").await);
    assert!(matches!(
        h.files.revoke(&file.owner, file.id, &who("bob")).await,
        Err(AppError::NotFound)
    ));
}

/// Written through the store, bypassing the service's check that an expiry is in the future.
async fn grant_as_stored(
    h: &Harness,
    file: &FileRecord,
    grantee: &str,
    granted_at: i64,
    expires_at: Option<OffsetDateTime>,
) {
    let (_, read) = h
        .store
        .get_with_grants(&file.owner, file.id)
        .await
        .unwrap()
        .unwrap();
    let mut grants = read.grants.clone();
    grants.push(Grant {
        grantee: who(grantee),
        granted_at: OffsetDateTime::from_unix_timestamp(granted_at).unwrap(),
        expires_at,
    });
    assert_eq!(
        h.store.write_grants(file, &read, &grants).await.unwrap(),
        Transition::Applied
    );
}

#[tokio::test]
async fn an_expired_grant_lets_nothing_through_and_is_not_listed() {
    let h = harness();
    let file = available(&h, "alice");
    grant_as_stored(
        &h,
        &file,
        "bob",
        1_700_000_000,
        Some(now() - time::Duration::seconds(1)),
    )
    .await;
    assert!(matches!(
        shared_download(&h, "bob", &file).await,
        Err(AppError::NotFound)
    ));
    assert!(shares_nothing(&h, "bob").await);
}

#[tokio::test]
async fn a_url_ends_no_later_than_its_grant() {
    let h = harness();
    let file = available(&h, "alice");
    let expires_at = now() + time::Duration::seconds(100);
    h.files
        .grant(&file.owner, file.id, who("bob"), Some(expires_at))
        .await
        .unwrap();
    let url = h
        .files
        .presign_shared_download(
            &who("bob"),
            &file.owner,
            file.id,
            Some(900),
            Disposition::Attachment,
        )
        .await
        .unwrap();
    assert!(
        url.expires_at <= expires_at,
        "{:?} > {expires_at}",
        url.expires_at
    );
    assert!(url.expires_at > expires_at - time::Duration::seconds(10));
}

#[tokio::test]
async fn deleting_a_file_takes_its_grants_with_it() {
    let h = harness();
    let file = available(&h, "alice");
    for grantee in ["bob", "carol"] {
        h.files
            .grant(&file.owner, file.id, who(grantee), None)
            .await
            .unwrap();
    }
    h.files.delete_file(&file.owner, file.id).await.unwrap();
    assert_eq!(
        h.store.grants_of(&file.owner, file.id),
        FileSharing::default()
    );
    // The same id again (as a reservation with the same Idempotency-Key would make it): the old
    // grants are gone, not revived.
    let again = seed(
        &h.store,
        &h.bucket,
        "alice",
        file.id,
        "text/plain",
        FileStatus::Available,
    );
    for grantee in ["bob", "carol"] {
        assert!(matches!(
            shared_download(&h, grantee, &again).await,
            Err(AppError::NotFound)
        ));
        assert!(shares_nothing(&h, grantee).await);
    }
}

/// A grant decided on what was read never lands over a change made since: the version moved.
#[tokio::test]
async fn a_grant_written_over_a_stale_read_is_refused() {
    let h = harness();
    let file = available(&h, "alice");
    let (record, read) = h
        .store
        .get_with_grants(&file.owner, file.id)
        .await
        .unwrap()
        .unwrap();
    h.files
        .grant(&file.owner, file.id, who("bob"), None)
        .await
        .unwrap();
    let carol = FileSharing::default()
        .with_grant(&file.owner, who("carol"), None, now())
        .unwrap();
    assert_eq!(
        h.store.write_grants(&record, &read, &carol).await.unwrap(),
        Transition::Stale
    );
    // And none lands on a file deleted since it was read.
    let (record, read) = h
        .store
        .get_with_grants(&file.owner, file.id)
        .await
        .unwrap()
        .unwrap();
    h.files.delete_file(&file.owner, file.id).await.unwrap();
    assert_eq!(
        h.store.write_grants(&record, &read, &carol).await.unwrap(),
        Transition::Stale
    );
}

#[tokio::test]
async fn the_shared_listing_is_newest_first_and_pages() {
    let h = harness();
    let mut files = Vec::new();
    for (n, owner) in ["alice", "carol", "alice"].into_iter().enumerate() {
        let file = available(&h, owner);
        grant_as_stored(&h, &file, "bob", 1_700_000_000 + n as i64, None).await;
        files.push(file);
    }
    let bob = who("bob");
    let (first, next) = h.files.shared_with(&bob, 2, None).await.unwrap();
    let next = next.expect("a second page");
    let (second, _) = h.files.shared_with(&bob, 2, Some(&next)).await.unwrap();
    let order: Vec<FileId> = first
        .iter()
        .chain(&second)
        .map(|shared| shared.id)
        .collect();
    assert_eq!(order, [files[2].id, files[1].id, files[0].id]);
    assert!(matches!(
        h.files.shared_with(&bob, 2, Some("0f1e2d3c")).await,
        Err(AppError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn a_grant_of_a_file_that_is_deleted_meanwhile_is_not_found() {
    let h = harness();
    let file = available(&h, "alice");
    let (deleted, granted) = tokio::join!(
        h.files.delete_file(&file.owner, file.id),
        h.files.grant(&file.owner, file.id, who("bob"), None)
    );
    deleted.unwrap();
    // Either order leaves no grant behind: granted before the delete, the delete took it; after
    // it, there was no file to grant.
    assert!(
        matches!(granted, Ok(_) | Err(AppError::NotFound)),
        "{granted:?}"
    );
    assert_eq!(
        h.store.grants_of(&file.owner, file.id),
        FileSharing::default()
    );
    assert!(matches!(
        shared_download(&h, "bob", &file).await,
        Err(AppError::NotFound)
    ));
}
