package org.newsradar.localnode;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.ar.ArabicAnalyzer;
import org.apache.lucene.analysis.bg.BulgarianAnalyzer;
import org.apache.lucene.analysis.bn.BengaliAnalyzer;
import org.apache.lucene.analysis.ca.CatalanAnalyzer;
import org.apache.lucene.analysis.cn.smart.SmartChineseAnalyzer;
import org.apache.lucene.analysis.cz.CzechAnalyzer;
import org.apache.lucene.analysis.da.DanishAnalyzer;
import org.apache.lucene.analysis.de.GermanAnalyzer;
import org.apache.lucene.analysis.el.GreekAnalyzer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.es.SpanishAnalyzer;
import org.apache.lucene.analysis.et.EstonianAnalyzer;
import org.apache.lucene.analysis.fa.PersianAnalyzer;
import org.apache.lucene.analysis.fi.FinnishAnalyzer;
import org.apache.lucene.analysis.fr.FrenchAnalyzer;
import org.apache.lucene.analysis.hi.HindiAnalyzer;
import org.apache.lucene.analysis.hu.HungarianAnalyzer;
import org.apache.lucene.analysis.id.IndonesianAnalyzer;
import org.apache.lucene.analysis.it.ItalianAnalyzer;
import org.apache.lucene.analysis.ja.JapaneseAnalyzer;
import org.apache.lucene.analysis.ko.KoreanAnalyzer;
import org.apache.lucene.analysis.lt.LithuanianAnalyzer;
import org.apache.lucene.analysis.lv.LatvianAnalyzer;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.nl.DutchAnalyzer;
import org.apache.lucene.analysis.no.NorwegianAnalyzer;
import org.apache.lucene.analysis.pl.PolishAnalyzer;
import org.apache.lucene.analysis.pt.PortugueseAnalyzer;
import org.apache.lucene.analysis.ro.RomanianAnalyzer;
import org.apache.lucene.analysis.ru.RussianAnalyzer;
import org.apache.lucene.analysis.sr.SerbianAnalyzer;
import org.apache.lucene.analysis.sv.SwedishAnalyzer;
import org.apache.lucene.analysis.th.ThaiAnalyzer;
import org.apache.lucene.analysis.tr.TurkishAnalyzer;
import org.apache.lucene.analysis.uk.UkrainianMorfologikAnalyzer;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;

/**
 * What the local node lacks against a full Elasticsearch 8 distribution, for newsradar's needs.
 *
 * <p>The node is Elastic's integ-test distribution, the only Elasticsearch 8 server on Maven
 * Central. It ships without the analysis-common module and the analysis plugins (stempel,
 * kuromoji, smartcn, nori, ukrainian), and without rest-root. So this plugin registers, under the
 * names Elasticsearch gives them, the language analysers newsradar's articles mapping names
 * (pipeline/languages.py is the table; one Lucene analyser class per name, as Elasticsearch's
 * providers build them with their default stop words), the asciifolding token filter its
 * folding analyser uses, and answers the root URL.
 */
public final class LocalNodePlugin extends Plugin implements AnalysisPlugin, ActionPlugin {

    private final AtomicReference<ClusterService> clusterService = new AtomicReference<>();

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService.set(services.clusterService());
        return List.of();
    }

    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> getAnalyzers() {
        // Sorted by name; tests/test_languages.py checks that these are the table's analysers.
        return Map.ofEntries(
            Map.entry("arabic", LanguageAnalyzerProvider.of(ArabicAnalyzer::new)),
            Map.entry("bengali", LanguageAnalyzerProvider.of(BengaliAnalyzer::new)),
            Map.entry("bulgarian", LanguageAnalyzerProvider.of(BulgarianAnalyzer::new)),
            Map.entry("catalan", LanguageAnalyzerProvider.of(CatalanAnalyzer::new)),
            Map.entry("czech", LanguageAnalyzerProvider.of(CzechAnalyzer::new)),
            Map.entry("danish", LanguageAnalyzerProvider.of(DanishAnalyzer::new)),
            Map.entry("dutch", LanguageAnalyzerProvider.of(DutchAnalyzer::new)),
            Map.entry("english", LanguageAnalyzerProvider.of(EnglishAnalyzer::new)),
            Map.entry("estonian", LanguageAnalyzerProvider.of(EstonianAnalyzer::new)),
            Map.entry("finnish", LanguageAnalyzerProvider.of(FinnishAnalyzer::new)),
            Map.entry("french", LanguageAnalyzerProvider.of(FrenchAnalyzer::new)),
            Map.entry("german", LanguageAnalyzerProvider.of(GermanAnalyzer::new)),
            Map.entry("greek", LanguageAnalyzerProvider.of(GreekAnalyzer::new)),
            Map.entry("hindi", LanguageAnalyzerProvider.of(HindiAnalyzer::new)),
            Map.entry("hungarian", LanguageAnalyzerProvider.of(HungarianAnalyzer::new)),
            Map.entry("indonesian", LanguageAnalyzerProvider.of(IndonesianAnalyzer::new)),
            Map.entry("italian", LanguageAnalyzerProvider.of(ItalianAnalyzer::new)),
            // analysis-kuromoji: JapaneseAnalyzer in search mode, default stop words and tags.
            Map.entry("kuromoji", LanguageAnalyzerProvider.of(JapaneseAnalyzer::new)),
            Map.entry("latvian", LanguageAnalyzerProvider.of(LatvianAnalyzer::new)),
            Map.entry("lithuanian", LanguageAnalyzerProvider.of(LithuanianAnalyzer::new)),
            // analysis-nori: KoreanAnalyzer, compounds decomposed (discard), default stop tags.
            Map.entry("nori", LanguageAnalyzerProvider.of(KoreanAnalyzer::new)),
            Map.entry("norwegian", LanguageAnalyzerProvider.of(NorwegianAnalyzer::new)),
            Map.entry("persian", LanguageAnalyzerProvider.of(PersianAnalyzer::new)),
            // analysis-stempel: the Stempel stemmer table with Polish stop words.
            Map.entry("polish", LanguageAnalyzerProvider.of(PolishAnalyzer::new)),
            Map.entry("portuguese", LanguageAnalyzerProvider.of(PortugueseAnalyzer::new)),
            Map.entry("romanian", LanguageAnalyzerProvider.of(RomanianAnalyzer::new)),
            Map.entry("russian", LanguageAnalyzerProvider.of(RussianAnalyzer::new)),
            Map.entry("serbian", LanguageAnalyzerProvider.of(SerbianAnalyzer::new)),
            // analysis-smartcn: SmartChineseAnalyzer's word segmentation and stop words.
            Map.entry("smartcn", LanguageAnalyzerProvider.of(SmartChineseAnalyzer::new)),
            Map.entry("spanish", LanguageAnalyzerProvider.of(SpanishAnalyzer::new)),
            Map.entry("swedish", LanguageAnalyzerProvider.of(SwedishAnalyzer::new)),
            Map.entry("thai", LanguageAnalyzerProvider.of(ThaiAnalyzer::new)),
            Map.entry("turkish", LanguageAnalyzerProvider.of(TurkishAnalyzer::new)),
            // analysis-ukrainian: the morfologik dictionary analyser.
            Map.entry("ukrainian", LanguageAnalyzerProvider.of(UkrainianMorfologikAnalyzer::new))
        );
    }

    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        // The folding analyser of languages without a Lucene analyser (mappings/articles.json's
        // analysis settings) is standard + lowercase + asciifolding; lowercase is built in.
        return List.of(PreConfiguredTokenFilter.singleton("asciifolding", true, ASCIIFoldingFilter::new));
    }

    @Override
    public Collection<RestHandler> getRestHandlers(
        Settings settings,
        NamedWriteableRegistry namedWriteableRegistry,
        RestController restController,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter settingsFilter,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<DiscoveryNodes> nodesInCluster,
        Predicate<NodeFeature> clusterSupportsFeature
    ) {
        return List.of(new RootAction(clusterService::get));
    }
}
