//! The bucket's tagging operations (Amazon S3 API Reference, PutObjectTagging,
//! GetObjectTagging, DeleteObjectTagging, and CopyObject's `x-amz-tagging-directive`), over the
//! tag store (see `tags`). Authorized before they get here, as every request is (`s3_access`).

use s3s::S3Result;
use s3s::dto::*;

use super::LocalBucket;
use super::tags::{self, TagSet};

fn tag_set(tags: TagSet) -> Vec<Tag> {
    tags.into_iter()
        .map(|(key, value)| Tag {
            key: Some(key),
            value: Some(value),
        })
        .collect()
}

impl LocalBucket {
    /// The version id S3 answers with: the bucket's, when it is versioned.
    fn answered_version(&self, version: String) -> Option<String> {
        self.versioned.then_some(version)
    }

    pub(super) async fn put_tagging(
        &self,
        input: PutObjectTaggingInput,
    ) -> S3Result<PutObjectTaggingOutput> {
        let tags = input
            .tagging
            .tag_set
            .into_iter()
            .map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default()))
            .collect();
        let version = self
            .tags
            .put(&input.bucket, &input.key, input.version_id.as_deref(), tags)
            .await?;
        Ok(PutObjectTaggingOutput {
            version_id: self.answered_version(version),
        })
    }

    pub(super) async fn get_tagging(
        &self,
        input: GetObjectTaggingInput,
    ) -> S3Result<GetObjectTaggingOutput> {
        let (version, tags) = self
            .tags
            .current(&input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        Ok(GetObjectTaggingOutput {
            tag_set: tag_set(tags),
            version_id: self.answered_version(version),
        })
    }

    pub(super) async fn delete_tagging(
        &self,
        input: DeleteObjectTaggingInput,
    ) -> S3Result<DeleteObjectTaggingOutput> {
        let version = self
            .tags
            .put(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                Vec::new(),
            )
            .await?;
        Ok(DeleteObjectTaggingOutput {
            version_id: self.answered_version(version),
        })
    }

    /// GetObject's `x-amz-tagging-count`: absent when the object has no tags.
    pub(super) async fn tag_count(&self, bucket: &str, key: &str) -> Option<i32> {
        let (_, tags) = self.tags.current(bucket, key, None).await.ok()?;
        i32::try_from(tags.len()).ok().filter(|count| *count > 0)
    }

    /// The tags of a copy: the source's (`x-amz-tagging-directive: COPY`, the default), or the
    /// request's `x-amz-tagging` (`REPLACE`).
    pub(super) async fn copied_tags(&self, input: &CopyObjectInput) -> S3Result<TagSet> {
        let replace = input
            .tagging_directive
            .as_ref()
            .is_some_and(|directive| directive.as_str() == TaggingDirective::REPLACE);
        if replace {
            return tags::parse_header(input.tagging.as_deref().unwrap_or_default());
        }
        Ok(match &input.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => self
                .tags
                .current(bucket, key, version_id.as_deref())
                .await
                .map(|(_, tags)| tags)
                .unwrap_or_default(),
            _ => Vec::new(),
        })
    }
}
